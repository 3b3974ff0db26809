"""Tables as a kind of data: CSV files joined into one frame (layout.py), the features a Kaggler
adds to it (features.py), each fold's encoding fitted on its training rows (encoding.py), rows
as the trainer takes them (inputs.py), and the entity-embeddings network (model.py)."""
