module example.com/strata/hello

go 1.19
