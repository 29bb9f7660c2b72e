"""The release: rows → a Hugging Face dataset folder (parquet configs, card, schemas), and push."""
