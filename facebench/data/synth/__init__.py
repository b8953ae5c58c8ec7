"""Synthetic identities: face-like drawings with a stable look per identity, as packs and bins.

Each identity draws a fixed appearance (skin tone and texture, face and jaw shape, ears, hair style
and colour, eye/brow/nose/mouth geometry and colours, optional glasses, moustache, beard, mole).
Each image of it varies by yaw, pitch, expression, rotation, scale, shift, background,
illumination, blur, noise, JPEG quality and occlusion, all scaled by ``difficulty``. Every random
draw comes from a generator seeded by ``(seed, stream, identity, image)``, so output is
byte-identical for a seed and independent of the order in which images are made.

appearance.py draws an identity and an image's variation, render.py draws them (OpenCV), and
dataset.py seeds the draws and writes packs and open-set bins (on a process pool).
"""
