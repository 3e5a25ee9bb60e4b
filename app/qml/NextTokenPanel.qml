import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// The next-token distribution after the prompt: the top-k tokens, most probable first.
Panel {
    id: panel

    component Heading: Label {
        color: Theme.textFaint
        font.pointSize: Theme.smallSize - 1
        font.capitalization: Font.AllUppercase
    }

    title: "Next token"
    subtitle: AppController.promptTokens.count > 0
              ? "after position " + (AppController.promptTokens.count - 1) : ""

    headerItems: [
        Label {
            text: "Top-k"
            color: Theme.textMuted
            font.pointSize: Theme.smallSize
        },
        SpinBox {
            objectName: "topKSpinBox"
            from: 1
            to: AppController.maxTopK
            value: AppController.topK
            editable: true
            implicitWidth: 96
            onValueModified: AppController.topK = value
        }
    ]

    ColumnLayout {
        anchors.fill: parent
        spacing: 0

        // Column headings, anchored like DistributionRow's columns.
        Item {
            id: headings
            Layout.fillWidth: true
            Layout.preferredHeight: 26

            Heading {
                id: rankHeading
                anchors.left: parent.left
                anchors.leftMargin: Theme.padding
                anchors.verticalCenter: parent.verticalCenter
                width: Theme.rankColumnWidth
                horizontalAlignment: Text.AlignRight
                text: "#"
            }
            Heading {
                id: tokenHeading
                anchors.left: rankHeading.right
                anchors.leftMargin: Theme.spacing
                anchors.verticalCenter: parent.verticalCenter
                width: Theme.tokenColumnWidth(headings.width)
                text: "Token"
            }
            Heading {
                id: logitHeading
                anchors.right: parent.right
                anchors.rightMargin: Theme.padding
                anchors.verticalCenter: parent.verticalCenter
                width: Theme.logitColumnWidth
                horizontalAlignment: Text.AlignRight
                text: "Logit"
            }
            Heading {
                id: percentHeading
                anchors.right: logitHeading.left
                anchors.rightMargin: Theme.spacing
                anchors.verticalCenter: parent.verticalCenter
                width: Theme.percentColumnWidth
                horizontalAlignment: Text.AlignRight
                text: "p"
            }
            Heading {
                anchors.left: tokenHeading.right
                anchors.leftMargin: Theme.spacing
                anchors.right: percentHeading.left
                anchors.rightMargin: Theme.spacing
                anchors.verticalCenter: parent.verticalCenter
                text: "Probability"
            }
        }
        Rectangle {
            Layout.fillWidth: true
            Layout.preferredHeight: 1
            color: Theme.divider
        }

        ListView {
            id: list
            objectName: "distributionView"
            Layout.fillWidth: true
            Layout.fillHeight: true
            clip: true
            boundsBehavior: Flickable.StopAtBounds
            model: AppController.distribution
            // Dimmed while a newer prompt is waiting or running.
            opacity: AppController.upToDate || count === 0 ? 1.0 : 0.55
            ScrollBar.vertical: ScrollBar {}

            Behavior on opacity {
                NumberAnimation {
                    duration: 120
                }
            }

            delegate: DistributionRow {
                width: ListView.view.width
            }

            Label {
                anchors.centerIn: parent
                visible: list.count === 0
                text: AppController.busy ? "Running…" : "Type a prompt to see what the model predicts next"
                color: Theme.textFaint
            }
        }
    }
}
