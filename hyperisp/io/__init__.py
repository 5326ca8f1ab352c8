"""Image and metadata input/output (TIFF writer, photo read/write, ICC and EXIF)."""
