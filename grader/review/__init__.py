"""The TA's loop: decisions stored beside the output, the review queue, answer groups, possible
collusion, corrections that re-grade the class, and the local web app that puts them together."""
