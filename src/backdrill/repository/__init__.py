"""The repository format: its layout, documents and the catalogues read from them."""
