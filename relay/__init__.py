# The central relay: ingest from the broker, the central store and the business connectors.
