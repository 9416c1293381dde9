# The demo: the whole box on one machine with demo data, for a first look.
