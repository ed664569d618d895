"""The FAISS + SQLite backend (import :mod:`.storage` for the storage itself; this package stays light)."""
