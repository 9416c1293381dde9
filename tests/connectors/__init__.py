# Tests of the connectors, the ledger, the books, Xero, QuickBooks and the reconciliation.
