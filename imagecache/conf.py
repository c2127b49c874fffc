"""Options of the image service client and the _base image cache ([image])."""
from oslo_config import cfg

image_group = cfg.OptGroup("image", title="Image service and image cache")

image_opts = [
    cfg.ListOpt("api_servers", default=["http://127.0.0.1:9292"],
                help="Base URLs of the image service (Glance v2 API), tried in "
                     "order until one answers."),
    cfg.StrOpt("auth_token", secret=True,
               help="Token sent as X-Auth-Token to the image service, if any."),
    cfg.FloatOpt("connect_timeout", default=10.0, min=0.1,
                 help="Seconds to wait for a connection to the image service."),
    cfg.FloatOpt("read_timeout", default=60.0, min=0.1,
                 help="Seconds to wait for data from the image service before "
                      "giving up on a request or a download."),
    cfg.IntOpt("num_retries", default=3, min=0,
               help="Retries of an idempotent image service request after a "
                    "connection error or a 5xx answer, with backoff."),
    cfg.StrOpt("cache_subdirectory", default="_base",
               help="Directory under instances_path that holds the cached "
                    "base images shared by instances."),
    cfg.BoolOpt("force_raw_images", default=True,
                help="Convert every downloaded image to raw once, in the "
                     "cache, so instance overlays sit on raw bases."),
    cfg.BoolOpt("use_cow_images", default=True,
                help="Give each instance a qcow2 overlay on the cached base. "
                     "When false the instance gets a full copy instead."),
    cfg.ListOpt("vmdk_allowed_types", default=["monolithicSparse", "streamOptimized"],
                help="VMDK subformats (createType) accepted; anything else, and "
                     "every VMDK whose descriptor names another file, is "
                     "refused."),
    cfg.IntOpt("cache_free_space_reserve_mb", default=512, min=0,
               help="Free space (MiB) that must remain in the cache's "
                    "filesystem after a download; a download that would eat "
                    "into it is refused before it starts."),
    cfg.StrOpt("preallocate_images", default="none", choices=["none", "space"],
               help="none: instance disks are sparse. space: reserve the "
                    "disk's whole size when it is created (full copies only)."),
    cfg.StrOpt("default_ephemeral_format", default="ext4",
               help="Filesystem made on ephemeral disks (mkfs -t)."),
    cfg.IntOpt("max_image_size_mb", default=1024 * 1024, min=1,
               help="The largest image (MiB) the agent downloads. A download is "
                    "cut as soon as it passes this, the size the image service "
                    "declared, or the flavor's root disk, whichever is smallest."),
    cfg.BoolOpt("allow_md5_checksum", default=True,
                help="Accept an image whose only hash is the legacy md5 'checksum' "
                     "(no os_hash_algo/os_hash_value). When false such an image "
                     "is refused."),
    cfg.BoolOpt("allow_unverified_images", default=False,
                help="Accept an image that carries no hash at all; its data is "
                     "then not verified. Off: such an image is refused."),
    cfg.IntOpt("qemu_img_cpu_seconds", default=30, min=1,
               help="CPU-time limit (seconds) of qemu-img converting a "
                    "downloaded image."),
    cfg.IntOpt("qemu_img_address_space_mb", default=1024, min=64,
               help="Address-space limit (MiB) of qemu-img converting a "
                    "downloaded image."),
]


cache_group = cfg.OptGroup("image_cache", title="Cleaning the image cache")

cache_opts = [
    cfg.IntOpt("manager_interval", default=2400, min=0,
               help="Seconds between runs of the cache manager, which touches "
                    "bases in use and removes old unused ones; 0 disables it."),
    cfg.BoolOpt("remove_unused_base_images", default=True,
                help="Whether the cache manager removes unused bases (when "
                     "false it only reports them)."),
    cfg.IntOpt("remove_unused_original_minimum_age_seconds", default=86400, min=0,
               help="An unused base is removed only once it has not been "
                    "used for this many seconds."),
    cfg.BoolOpt("instances_path_shared", default=False,
                help="instances_path (and so _base) is shared with other "
                     "hosts: count the instances of every host in the "
                     "database as users of the cache, not only this host's."),
]


def list_opts():
    return [(image_group, image_opts), (cache_group, cache_opts)]
