"""moto conformance: AMI deregistration protection.

moto 5.2.5 has no EnableImageDeregistrationProtection / DisableImageDeregistrationProtection, no
``DeregistrationProtection`` in DescribeImages, and deregisters any AMI. AWS:
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_EnableImageDeregistrationProtection.html
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DisableImageDeregistrationProtection.html
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ami-deregistration-protection.html

* EnableImageDeregistrationProtection protects an AMI the caller owns: DeregisterImage then fails and
  deregisters nothing. ``WithCooldown=true`` keeps the protection for 24 hours after it is disabled.
* DisableImageDeregistrationProtection lifts it: at once without the cooldown; with it, the AMI stays
  protected for 24 hours and DescribeImages shows ``disabled-until <UTC time>`` meanwhile.
* DescribeImages gives each AMI's ``DeregistrationProtection``: ``disabled``, ``enabled``,
  ``enabled-with-cooldown`` or ``disabled-until <time>``.
* DeregisterImage of a protected AMI fails with ``OperationNotPermitted`` (HTTP 400), the code this harness
  answers; the purge decides from DescribeImages' ``DeregistrationProtection`` first.

Tests end a cooldown with ``end_cooldown(ami)``.
"""

import datetime

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.exceptions import InvalidAMIIdError
from moto.ec2.models.amis import Ami
from moto.ec2.responses.amis import AmisResponse

PROTECTED_IMAGE_CODE = "OperationNotPermitted"
COOLDOWN = datetime.timedelta(hours=24)
_PATCHED = False


class ImageProtected(EC2ClientError):
    def __init__(self, image_id, state):
        super().__init__(
            PROTECTED_IMAGE_CODE,
            "The image {0} can't be deregistered: deregistration protection is {1}".format(image_id, state),
        )


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def protection_of(ami):
    """The AMI's DeregistrationProtection as DescribeImages words it."""
    state = getattr(ami, "_protection", "disabled")
    if state == "disabled-until":
        until = ami._protected_until
        if until <= _now():
            return "disabled"
        return "disabled-until " + until.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return state


def is_protected(ami):
    return protection_of(ami) != "disabled"


def end_cooldown(ami):
    """As if the 24 hours after disabling the protection had passed."""
    if getattr(ami, "_protection", None) == "disabled-until":
        ami._protected_until = _now() - datetime.timedelta(seconds=1)


def _owned_image(response):
    image_id = response._get_param("ImageId")
    ami = response.ec2_backend.amis.get(image_id)
    if ami is None or ami.owner_id != response.current_account:
        raise InvalidAMIIdError(image_id)
    return ami


def apply():
    global _PATCHED
    if _PATCHED:
        return
    original_deregister = AmisResponse.deregister_image

    def enable_image_deregistration_protection(self):
        ami = _owned_image(self)
        with_cooldown = str(self._get_param("WithCooldown", False)).lower() == "true"
        ami._protection = "enabled-with-cooldown" if with_cooldown else "enabled"
        return ActionResult({"Return": "true"})

    def disable_image_deregistration_protection(self):
        ami = _owned_image(self)
        if getattr(ami, "_protection", "disabled") == "enabled-with-cooldown":
            ami._protection = "disabled-until"
            ami._protected_until = _now() + COOLDOWN
        elif getattr(ami, "_protection", "disabled") == "enabled":
            ami._protection = "disabled"
        return ActionResult({"Return": "true"})

    def deregister_image(self):
        ami = self.ec2_backend.amis.get(self._get_param("ImageId"))
        if ami is not None and is_protected(ami):
            raise ImageProtected(ami.id, protection_of(ami))
        return original_deregister(self)

    Ami.deregistration_protection = property(protection_of)
    AmisResponse.enable_image_deregistration_protection = enable_image_deregistration_protection
    AmisResponse.disable_image_deregistration_protection = disable_image_deregistration_protection
    AmisResponse.deregister_image = deregister_image
    _PATCHED = True
