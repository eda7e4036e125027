"""Mail: rendering template folders, the senders behind one interface, and the dispatch worker."""
