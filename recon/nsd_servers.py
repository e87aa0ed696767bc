"""Where the real NSD's files come from: NSD's public S3 bucket and COCO's caption archive (overridable, for a
mirror or a test's servers). Kept apart from the fetcher so that the command line reads it without loading it."""

from __future__ import annotations

from dataclasses import dataclass

NSD_BUCKET = "natural-scenes-dataset"
#: the bucket's region, from the Registry of Open Data on AWS (awslabs/open-data-registry, datasets/nsd.yaml)
NSD_REGION = "us-east-2"
#: COCO's 2017 annotations: annotations/captions_{train,val}2017.json among others
COCO_ANNOTATIONS_URL = "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"
TERMS = ("NSD's data are shared under its terms and conditions: accept them (the NSD Data Access Agreement) at "
         "https://naturalscenesdataset.org before you use the data.")


@dataclass(frozen=True)
class Servers:
    """NSD's bucket (or a mirror at ``endpoint_url``) and COCO's caption archive."""

    bucket: str = NSD_BUCKET
    endpoint_url: str | None = None
    region: str = NSD_REGION
    annotations_url: str = COCO_ANNOTATIONS_URL
