"""pbx-sla: service levels, tier accounting and support-line routing beside an Asterisk PBX."""

__version__ = "0.1.0"
