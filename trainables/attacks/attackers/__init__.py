"""The attackers, one module per attacker or family of attackers. The registry
(`trainables.attacks.registry`) imports every module here, so a module dropped in this
folder adds its `@register`ed attackers to every suite."""
