"""Where cplvad reads and writes: locations (local, s3://, any fsspec scheme), folder ownership and writer locks."""
