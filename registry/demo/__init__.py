"""Demo content for a fictional company, loaded into an empty database."""
