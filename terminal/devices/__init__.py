# purpose: the devices inside the box: discovery, health, printing, the drawer and the scanners.
"""Kept import-light: ``terminal.config`` imports ``settings`` from here at start-up."""
