"""Ingestion: files -> parsed elements -> chunks -> vectors -> store, incrementally."""
