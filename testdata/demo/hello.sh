#!/bin/sh
echo "$(cat /app/message.txt) (running as $(id -un), built by strata)"
