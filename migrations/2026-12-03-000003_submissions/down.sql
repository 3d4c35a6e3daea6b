DROP TABLE IF EXISTS submissions;
