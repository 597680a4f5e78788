"""Launch: configure, check, start and supervise a VERL run; turn its checkpoint into a model."""
