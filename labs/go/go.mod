module labgo

go 1.19
