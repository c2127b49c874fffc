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
    cfg.IntOpt("qemu_img_cpu_seconds", default=30, min=1,
               help="CPU-time limit (seconds) for qemu-img info/check on "
                    "untrusted images."),
    cfg.IntOpt("qemu_img_address_space_mb", default=1024, min=64,
               help="Address-space limit (MiB) for qemu-img on untrusted "
                    "images."),
]


def register_opts(conf):
    conf.register_group(image_group)
    conf.register_opts(image_opts, group=image_group)


def list_opts():
    return [(image_group, image_opts)]
