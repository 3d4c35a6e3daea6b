//! Alert ingestion: validation of pushed alerts and their evidence, then correlation.
