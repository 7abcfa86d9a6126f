package mrclient

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDetails is a failed call's status with the google.rpc details the router attaches:
// BadRequest names the field at fault, ErrorInfo carries a reason (MODEL_NOT_FOUND, ...)
// and metadata such as every attempt, RetryInfo says how long to wait before retrying.
// A detail the status does not carry is nil.
type ErrorDetails struct {
	Code       codes.Code
	Message    string
	BadRequest *errdetails.BadRequest
	ErrorInfo  *errdetails.ErrorInfo
	RetryInfo  *errdetails.RetryInfo
}

// Details reads err's status and details. ok is false when err is not a gRPC status error
// (nil included).
func Details(err error) (details ErrorDetails, ok bool) {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return ErrorDetails{}, false
	}
	details = ErrorDetails{Code: st.Code(), Message: st.Message()}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.BadRequest:
			details.BadRequest = d
		case *errdetails.ErrorInfo:
			details.ErrorInfo = d
		case *errdetails.RetryInfo:
			details.RetryInfo = d
		}
	}
	return details, true
}

// FieldViolations maps each field the router rejected to its description.
func (d ErrorDetails) FieldViolations() map[string]string {
	out := map[string]string{}
	for _, v := range d.BadRequest.GetFieldViolations() {
		out[v.GetField()] = v.GetDescription()
	}
	return out
}
