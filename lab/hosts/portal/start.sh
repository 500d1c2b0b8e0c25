# lab portal: nginx (expired certificate, no HSTS)
nginx
