"""Storage backends of the gallery, one module (or package) each; :mod:`reid.gallery.registry` names them."""
