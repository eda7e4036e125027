"""Use cases on a database session; they flush, the caller commits once."""
