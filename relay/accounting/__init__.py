# Accounting on the relay: the internal double-entry ledger and the acquirer settlement import.
