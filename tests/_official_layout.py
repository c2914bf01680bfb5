"""The key layout of an official mmdetection UniParser checkpoint, written from DESIGN §2 (not from our model):
used by the model, checkpoint and parity-gate tests."""


def official_keys(depth=50, light=False, num_classes=59):
    """Key -> shape of an official mmdetection checkpoint, written from the DESIGN rules (not from our
    model): torchvision ResNet layout with mmcv DCNv2 in layer2..4, mmdet FPN, Repparsing head."""
    blocks = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
    keys = {}

    def bn(prefix, c):
        for k in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{prefix}.{k}"] = (c,)
        keys[f"{prefix}.num_batches_tracked"] = ()

    keys["backbone.conv1.weight"] = (64, 3, 7, 7)
    bn("backbone.bn1", 64)
    inplanes = 64
    for s, n in enumerate(blocks):
        planes = 64 * 2 ** s
        for b in range(n):
            p = f"backbone.layer{s + 1}.{b}"
            cin = inplanes if b == 0 else planes * 4
            keys[f"{p}.conv1.weight"] = (planes, cin, 1, 1)
            bn(f"{p}.bn1", planes)
            keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            if s >= 1:
                keys[f"{p}.conv2.conv_offset.weight"] = (27, planes, 3, 3)
                keys[f"{p}.conv2.conv_offset.bias"] = (27,)
            bn(f"{p}.bn2", planes)
            keys[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if b == 0:
                keys[f"{p}.downsample.0.weight"] = (planes * 4, cin, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
        inplanes = planes * 4
    for i, c in enumerate((256, 512, 1024, 2048)):
        keys[f"neck.lateral_convs.{i}.conv.weight"] = (256, c, 1, 1)
        keys[f"neck.lateral_convs.{i}.conv.bias"] = (256,)
        keys[f"neck.fpn_convs.{i}.conv.weight"] = (256, 256, 3, 3)
        keys[f"neck.fpn_convs.{i}.conv.bias"] = (256,)
    cin, k = (256, 1) if light else (1280, 3)
    for name in ("dekr_convs", "segment_converts"):
        keys[f"mask_head.{name}.weight"] = (256, cin, k, k)
        keys[f"mask_head.{name}.bias"] = (256,)
    for branch in ("center_convs", "instance_convs", "semantic_convs"):
        for i in range(4):
            keys[f"mask_head.{branch}.{i}.conv.weight"] = (128, 258 if i == 0 else 128, 3, 3)
            keys[f"mask_head.{branch}.{i}.gn.weight"] = (128,)
            keys[f"mask_head.{branch}.{i}.gn.bias"] = (128,)
    keys["mask_head.center_heatmap.weight"] = (1, 128, 3, 3)
    keys["mask_head.center_heatmap.bias"] = (1,)
    keys["mask_head.seg_kernels"] = (num_classes - 1, 128)
    keys["mask_head.ins_coord_conv.weight"] = (2, 128, 3, 3)
    keys["mask_head.ins_coord_conv.bias"] = (2,)
    return keys
