-- The gallery's images. The list query filters on is_public and orders by
-- created_at, id: ix_svg_public_created serves it without a sort.
CREATE TABLE IF NOT EXISTS svg_image (
    id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    filename VARCHAR(255) NOT NULL,
    description TEXT NULL,
    svg_content MEDIUMTEXT NOT NULL,
    user_id INT UNSIGNED NULL,
    is_public TINYINT(1) NOT NULL DEFAULT 1,
    view_count INT UNSIGNED NOT NULL DEFAULT 0,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    KEY ix_svg_public_created (is_public, created_at, id),
    KEY ix_svg_user (user_id),
    CONSTRAINT fk_svg_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
