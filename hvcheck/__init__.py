"""hvcheck: can this host run KVM guests, and do its instances really get KVM?"""

__version__ = "0.1.0"
