-- Account names compare by UCA 5.2.0 rather than 4.0.0, which gives every
-- character outside the Basic Multilingual Plane the same weight: "ann😀"
-- and "ann🔥" were one account. Case, accents and trailing spaces are still
-- ignored, as before.
ALTER TABLE users
    MODIFY username VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL;
