DROP TABLE event_watermarks;
