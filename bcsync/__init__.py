"""The bcsync command line and the local worker that stands in for the Functions host."""
