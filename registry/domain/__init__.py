"""Domain logic of the sub-processor registry, free of web and database concerns."""
