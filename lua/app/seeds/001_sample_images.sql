-- Development only: 300 sample images (coloured circles and squares), spread
-- over the last 300 hours, every tenth one private.
INSERT INTO svg_image (filename, description, svg_content, is_public, view_count, created_at)
WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
SELECT
    CONCAT('sample-', LPAD(i, 3, '0'), '.svg'),
    CONCAT('Sample image ', i),
    CONCAT('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100" width="100" height="100">',
           '<rect width="100" height="100" fill="hsl(', (i * 37) % 360, ',30%,92%)"/>',
           IF(i % 2 = 0,
              CONCAT('<circle cx="50" cy="50" r="', 10 + i % 35, '" fill="hsl(', (i * 53) % 360, ',70%,45%)"/>'),
              CONCAT('<rect x="25" y="25" width="', 20 + i % 50, '" height="50" fill="hsl(', (i * 53) % 360, ',70%,45%)"/>')),
           '</svg>'),
    IF(i % 10 = 0, 0, 1),
    (i * 7) % 100,
    NOW() - INTERVAL i HOUR
FROM n;
