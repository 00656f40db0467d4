"""Data-preparation stages: raw dataset in, one HDF5 file out (one module per dataset)."""
