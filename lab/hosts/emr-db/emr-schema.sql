-- lab emr-db: synthetic EMR data (made-up patients only)
CREATE DATABASE IF NOT EXISTS emr CHARACTER SET utf8mb4;
USE emr;
CREATE TABLE IF NOT EXISTS patient (id INT PRIMARY KEY, name VARCHAR(64), birth DATE, diagnosis VARCHAR(128));
INSERT IGNORE INTO patient VALUES
  (1, 'TEST^PATIENT1', '1950-01-01', '消渴病 (synthetic)'),
  (2, 'TEST^PATIENT2', '1962-05-17', '胸痹 (synthetic)'),
  (3, 'TEST^PATIENT3', '1978-11-30', '眩晕 (synthetic)');
-- planted: default account admin/admin with every privilege, from any host
CREATE USER IF NOT EXISTS 'admin'@'%' IDENTIFIED BY 'admin';
GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
