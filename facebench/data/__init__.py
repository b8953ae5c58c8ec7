"""Data stage: RecordIO packs, image folders, verification bins, synthetic identities."""
