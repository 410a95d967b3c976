"""OpenImage-MINI: spec, streaming selection from the Open Images CSVs, and the build of
its COCO-format, semantic-segmentation and object-crop datasets."""
