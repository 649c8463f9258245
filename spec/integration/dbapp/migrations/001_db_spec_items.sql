-- The table of spec/integration/db_spec.lua. v compares byte for byte
-- (utf8mb4_bin), so that "a\0b" and "ab" stay different rows.
CREATE TABLE IF NOT EXISTS db_spec_items (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    v VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    n BIGINT NULL,
    tag VARCHAR(64) NOT NULL DEFAULT '',
    created DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    KEY ix_db_spec_items_tag (tag)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
