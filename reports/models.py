"""Reports own no tables: they read the roster and the incidents."""
