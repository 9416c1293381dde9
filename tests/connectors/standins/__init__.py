# Local stand-ins for the cloud accounting APIs (the only things the connector tests mock).
