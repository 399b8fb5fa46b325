"""Storage providers, one module per source Type: ``inline``, ``local``, ``urlDownload``."""
