"""HTTP ingest: facilities post HL7 v2, CDA, JSON and batch files with their API keys."""
