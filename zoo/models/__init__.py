"""Models: the interface and its implementations; providers are imported only when used."""
