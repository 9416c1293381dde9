# Tillbox: the package that holds the command line and the terminal/relay contract.
__version__ = "0.1.0"
