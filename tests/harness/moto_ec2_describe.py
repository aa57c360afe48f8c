"""EC2 describe calls at AWS's cost in moto 5.2.5: tags looked up per resource, images and snapshots paged.

moto keeps a region's tags in ``TagBackend.tags``, a dict keyed by resource id, but every resource
reads its own tags through ``describe_tags(filters={"resource-id": [id]})``, which walks every tag of
the region and matches each resource id against a regular expression. Rendering a resource's
``Tags``, and every ``tag:Key``, ``tag-key`` or ``tag-value`` filter, pays that walk, so describing
N tagged resources costs N x (all tags of the region): 2,200 AMIs over 4 regions take seconds per
call. AWS answers a page of a filtered describe in a fraction of a second at any account size, and
pages DescribeImages and DescribeSnapshots where moto returns everything at once. The patches below
change the cost and the paging, never an answer a caller relies on:

* A resource's tags are read from its own entry of ``TagBackend.tags`` (a dict lookup), in the same
  order and shape ``describe_tags`` gives; ``create_tags`` and ``delete_tags`` write that same entry,
  so the lookup is always in step with them. DescribeTags itself is unchanged.
* DeregisterImage and DeleteSnapshot drop the resource's tags with it: on AWS a tag is part of its
  resource and DescribeTags lists tags of existing resources only; moto keeps them after the delete.
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_Tags.html
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeTags.html
* DescribeImages honours ``MaxResults`` and ``NextToken``: pages of at most MaxResults images and a
  NextToken while more remain; without MaxResults every image comes in one answer, as before. A
  MaxResults outside 1 to 1,000 (the range of EC2's paginated describes; the page below names none)
  is refused with ``InvalidParameterValue``.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeImages.html
  ("MaxResults: The maximum number of items to return for this request. To get the next page of
  items, make another request with the token returned in the output."; "We strongly recommend using
  only paginated requests.")
* DescribeSnapshots honours ``MaxResults`` and ``NextToken`` the same way: MaxResults below 5 is
  refused with ``InvalidParameterValue``, above 1,000 gives pages of 1,000, and MaxResults with
  ``SnapshotIds`` in one request is refused with ``InvalidParameterCombination``.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSnapshots.html
  ("This value can be between 5 and 1,000; if this value is larger than 1,000, only 1,000 results are
  returned. If this parameter is not used, then the request returns all snapshots. You cannot specify
  this parameter and the snapshot IDs parameter in the same request.")
* DescribeSnapshots with a ``snapshot-id`` filter of plain ids (no wildcard) looks those ids up
  instead of matching every snapshot of the region against every value (moto's cost: snapshots x
  values per call); the answer is the one moto's filter gives, in the same order.
* Pages come in a stable order (by resource id); a NextToken is opaque (the position after the last
  item of the page, encoded) and one that does not decode is refused with ``InvalidPaginationToken``.
  Items deleted between pages are not returned; no item is returned twice.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Query-Requests.html#api-pagination
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
  ("InvalidPaginationToken: The specified pagination token is not valid or is expired.")

``apply()`` is idempotent; ``moto_server.apply_conformance_patches`` calls it. ``unapply()`` restores
moto as it was (for tests that compare patched with unpatched answers).
"""

import base64
import binascii
import json

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.exceptions import InvalidParameterCombination
from moto.ec2.exceptions import InvalidSnapshotIdError
from moto.ec2.models.amis import AmiBackend
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.elastic_block_store import EBSBackend
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.elastic_block_store import ElasticBlockStore
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE
from moto.ec2.utils import generic_filter
from moto.ec2.utils import get_prefix

PAGE_LIMITS = {"DescribeImages": (1, 1000), "DescribeSnapshots": (5, 1000)}
_ORIGINALS = {}


class InvalidMaxResults(EC2ClientError):
    def __init__(self, value, minimum, maximum):
        super().__init__(
            "InvalidParameterValue",
            "Value ( {0} ) for parameter maxResults is invalid. Parameter must be between {1} and {2}.".format(
                value, minimum, maximum
            ),
        )


class InvalidPaginationToken(EC2ClientError):
    def __init__(self, token):
        super().__init__("InvalidPaginationToken", "The specified pagination token is not valid or is expired: " + token)


# ---------------------------------------------------------------- tags per resource


def get_tags(self):
    """This resource's tags, as ``describe_tags(filters={"resource-id": [self.id]})`` lists them."""
    if not self.id:
        return []
    tags = self.ec2_backend.tags.get(self.id)
    if not tags:
        return []
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
    return [
        {"resource_id": self.id, "key": key, "value": value, "resource_type": resource_type}
        for key, value in list(tags.items())
    ]


def _dropping_tags(original):
    def delete(self, resource_id, *args, **kwargs):
        result = original(self, resource_id, *args, **kwargs)
        self.tags.pop(resource_id, None)
        return result

    delete.__name__ = original.__name__
    return delete


def describe_snapshots_backend(self, snapshot_ids=None, filters=None):
    """``EBSBackend.describe_snapshots``, narrowing to the ids of a wildcard-free ``snapshot-id`` filter first."""
    matches = list(self.snapshots.values())
    if snapshot_ids:
        matches = [snap for snap in matches if snap.id in snapshot_ids]
        if len(snapshot_ids) > len(matches):
            raise InvalidSnapshotIdError()
    wanted = (filters or {}).get("snapshot-id")
    if isinstance(wanted, list) and wanted and not any(char in value for value in wanted for char in "*?[]"):
        wanted = set(wanted)
        matches = [snap for snap in matches if snap.id in wanted]
    if filters:
        matches = generic_filter(filters, matches)
    return matches


# ---------------------------------------------------------------- pages


def encode_token(after):
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


def decode_token(token):
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeError):
        raise InvalidPaginationToken(token) from None
    if not isinstance(after, str):
        raise InvalidPaginationToken(token)
    return after


def page_size(action, max_results):
    """The page size for a request's ``MaxResults`` (None: all); refuses what AWS refuses."""
    if max_results is None:
        return None
    minimum, maximum = PAGE_LIMITS[action]
    if max_results < minimum or (action == "DescribeImages" and max_results > maximum):
        raise InvalidMaxResults(max_results, minimum, maximum)
    return min(max_results, maximum)


def paged(items, size, token):
    """``(page, next_token)``: the items after ``token`` in id order, at most ``size`` of them."""
    if size is None and token is None:
        return items, None
    ordered = sorted(items, key=lambda item: item.id)
    if token is not None:
        after = decode_token(token)
        ordered = [item for item in ordered if item.id > after]
    if size is None or len(ordered) <= size:
        return ordered, None
    page = ordered[:size]
    return page, encode_token(page[-1].id)


def page_params(response, action):
    max_results = response._get_param("MaxResults")
    token = response._get_param("NextToken") or None
    return page_size(action, None if max_results in (None, "") else int(max_results)), token


def describe_images(self):
    self.error_on_dryrun()
    size, token = page_params(self, "DescribeImages")
    images = self.ec2_backend.describe_images(
        ami_ids=self._get_param("ImageIds", []),
        filters=self._filters_from_querystring(),
        exec_users=self._get_param("ExecutableUsers", []),
        owners=self._get_param("Owners", []),
    )
    page, next_token = paged(images, size, token)
    result = {"Images": page}
    if next_token:
        result["NextToken"] = next_token
    return ActionResult(result)


def describe_snapshots(self):
    size, token = page_params(self, "DescribeSnapshots")
    snapshot_ids = self._get_param("SnapshotIds", [])
    if size is not None and snapshot_ids:
        raise InvalidParameterCombination("The parameter snapshotIdSet cannot be used with the parameter maxResults")
    snapshots = self.ec2_backend.describe_snapshots(snapshot_ids=snapshot_ids, filters=self._filters_from_querystring())
    page, next_token = paged(snapshots, size, token)
    result = {"Snapshots": page}
    if next_token:
        result["NextToken"] = next_token
    return ActionResult(result)


# ---------------------------------------------------------------- apply / unapply

_PATCHES = (
    (TaggedEC2Resource, "get_tags", lambda original: get_tags),
    (AmiBackend, "deregister_image", _dropping_tags),
    (EBSBackend, "delete_snapshot", _dropping_tags),
    (EBSBackend, "describe_snapshots", lambda original: describe_snapshots_backend),
    (AmisResponse, "describe_images", lambda original: describe_images),
    (ElasticBlockStore, "describe_snapshots", lambda original: describe_snapshots),
)


def apply():
    if _ORIGINALS:
        return
    for owner, name, make in _PATCHES:
        original = owner.__dict__[name]
        _ORIGINALS[(owner, name)] = original
        setattr(owner, name, make(original))


def unapply():
    for (owner, name), original in _ORIGINALS.items():
        setattr(owner, name, original)
    _ORIGINALS.clear()
