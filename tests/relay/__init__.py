# Tests of the relay side: the broker kit now; ingest and connectors as they land.
