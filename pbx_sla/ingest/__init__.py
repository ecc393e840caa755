"""Batch ingestion of CDR files (``pbx-sla cdr import``): a streaming Master.csv reader and the import
pipeline that feeds the same sink as the daemon."""
