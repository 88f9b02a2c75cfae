"""One module per `lbm` command (or small family), loaded only when that command runs."""
