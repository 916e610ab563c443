module upstash-rotator/hack/image/pause

go 1.22
