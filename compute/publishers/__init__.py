"""Publishers, one module per publisher Type: ``local``, ``noop``."""
