"""Where cplvad reads and writes: locations (local, s3://, any fsspec scheme), atomic local writes, folder and
prefix ownership, writer locks. Below ``cplvad.io`` (the file formats), which writes through it."""
